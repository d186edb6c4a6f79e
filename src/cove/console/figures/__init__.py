"""What the console's sections show, as plain data: each module reads one capability's tables (through its own
storage and service functions where they exist) and returns dataclasses, apart from the routes that draw them.

Figures over time are counted per UTC day in the database (GROUP BY the day), so a page costs one small query per
chart however many rows the relay holds; lists are bounded and say when they were cut.
"""
