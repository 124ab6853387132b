"""labelsieve.commands"""
