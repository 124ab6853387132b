"""labelsieve.data"""
