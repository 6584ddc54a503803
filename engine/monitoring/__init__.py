"""engine/monitoring"""
