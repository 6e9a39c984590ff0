"""Workshop mode: one host per student, their folders, and the class board."""
