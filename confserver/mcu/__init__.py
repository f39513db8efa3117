"""A/V MCU cores (pure): audio mixing and dominant speaker identification."""
