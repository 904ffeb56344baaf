"""Widgets: draw view models on their own timers; no engine, protocol or audio logic here."""
