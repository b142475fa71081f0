"""ocpp_adapter"""
