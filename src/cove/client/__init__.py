"""Client SDK: a sans-I/O core (state, crypto, protocol) and a thin async transport."""
