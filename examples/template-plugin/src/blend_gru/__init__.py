"""A template blend plugin: copy this folder to start your own."""
