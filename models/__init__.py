"""Model zoo: hcompile's test and benchmark models, built from code with fixed seeds."""
