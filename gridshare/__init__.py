"""gridshare"""
