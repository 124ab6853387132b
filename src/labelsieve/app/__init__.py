"""labelsieve.app"""
