"""labelsieve.metrics"""
