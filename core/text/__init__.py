"""Text classifiers: tokenised batches, the Transformer/LSTM training loop, TF-IDF, estimates, serving, explanations."""
