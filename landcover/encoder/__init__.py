"""A pretrained encoder: the network it is trained as and its objective
(:mod:`~landcover.encoder.objective`: hide observations and bands, reconstruct them), and the
folder it is kept in (:mod:`~landcover.encoder.folder`: ``encoder.json`` and
``encoder.weights.h5``; reading it, checking it against a dataset and a network, starting a
network from it). ``landcover pretrain`` (:mod:`landcover.pretrain`) writes such folders;
``train.pretrain`` reads them. Nothing is imported here.
"""
