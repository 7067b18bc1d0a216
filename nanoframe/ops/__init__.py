"""The ops, one file per family. Each op is a Function subclass (forward and backward side by
side) followed by its lowercase function."""
