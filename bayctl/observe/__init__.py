"""`bayctl observe`: the flow events of a bay's agents, merged (bay.py), and how they read (text.py)."""
