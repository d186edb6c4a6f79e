"""The console's read models: queries on the relay's database that return plain data for the charts, and the
pure arithmetic of their time axes. No routes, no templates."""
