"""The offline digits world: scikit-learn's shipped 8x8 digits, a DDPM and a judge trained here."""
