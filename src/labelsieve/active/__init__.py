"""labelsieve.active"""
