"""Workstation side: adversarial autoencoders (model, priors, training, evaluation) and their datasets.

Submodules are imported explicitly (`from aae import model`); this file stays empty so importing one
part does not pull torch-heavy siblings along.
"""
