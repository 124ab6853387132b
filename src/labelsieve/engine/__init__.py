"""labelsieve.engine"""
