"""engine/strategy"""
