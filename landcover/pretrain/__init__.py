"""Self-supervised pretraining of the networks' encoders on the user's own scenes, no labels.

``landcover pretrain SCENES --out DIR`` samples windows from the whole stack
(:mod:`~landcover.pretrain.sample`), hides valid observations and bands and trains the network's
encoder to reconstruct them (:mod:`~landcover.pretrain.objective`), with progress, a time budget
and resume (:mod:`~landcover.pretrain.run`). ``train.pretrain: DIR`` starts a network from it
(:mod:`~landcover.pretrain.encoder`), after checking that its bands, features and network
settings match. Nothing is imported here: the submodules are imported where they are used.
"""
