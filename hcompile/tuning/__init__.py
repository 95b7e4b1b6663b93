"""Tuning: MetaSchedule over a model's CPU functions, with a persistent database that every
later compile for the same target reads (see :mod:`.database`, :mod:`.tune`)."""
