"""Labelling inside Protolab: unlabelled datasets, what to label next, background retrains of the few-shot model."""
