"""labelsieve.crowd"""
