"""Real-time two-way sync between Taskwarrior and Vikunja."""

__version__ = "0.1.0"
