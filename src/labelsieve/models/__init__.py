"""labelsieve.models"""
