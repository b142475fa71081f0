"""oscp"""
