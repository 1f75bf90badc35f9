"""Small helpers shared by every stage: atomic outputs, seeding, logging and progress."""
