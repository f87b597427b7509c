"""``landcover pretrain``: self-supervised pretraining of a network's encoder on the user's own
scenes, no labels.

It samples windows from the whole stack (:mod:`~landcover.pretrain.sample`) and trains the encoder
on the masked-observation objective of :mod:`landcover.encoder.objective`, with progress, a time
budget and resume (:mod:`~landcover.pretrain.run`), into an encoder folder
(:mod:`landcover.encoder.folder`) that ``train.pretrain: DIR`` starts a network from. Nothing is
imported here: the submodules are imported where they are used.
"""
