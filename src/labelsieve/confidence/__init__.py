"""labelsieve.confidence"""
