"""DCP's learned half: layer, hardware and dataflow codes, the cost predictor, and its dataset."""
