"""ragchat: a retrieval-augmented chat service. One engine (engine.py) over small
interfaces (interfaces.py), one HTTP app (app.py), local and AWS adapters."""
