"""The six workflows of the ops brief in Temporal's Python style, on opsloom.compat.temporal."""
