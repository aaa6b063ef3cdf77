"""A realistic multi-channel customer population with known ground truth."""
