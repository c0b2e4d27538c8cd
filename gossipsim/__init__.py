"""gossipsim: a discrete-event simulator for distributed SGD."""

__version__ = "0.1.0"
