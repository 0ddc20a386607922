"""Building blocks, each a torch.nn.Module: recurrent cells and layers, conv blocks."""
