"""URCDC-Depth in plain PyTorch: network, data, training, evaluation and export. No ROS imports here."""
