"""Datasets: embedded offline sets (tiny profile), synthetic images (smoke), real datasets (real.py)."""
