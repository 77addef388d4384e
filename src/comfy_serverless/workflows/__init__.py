"""Workflows: editor files to prompts, templates with typed parameters, seeds."""
