"""`make demo`: the whole pipeline on simulated seed services (filled in as the product grows)."""
