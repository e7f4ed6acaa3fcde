"""Recommenders: interaction splits, the models, training, ranking metrics and serving."""
