"""engine/trading"""
