"""labelsieve.store"""
