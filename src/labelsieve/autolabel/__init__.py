"""labelsieve.autolabel"""
