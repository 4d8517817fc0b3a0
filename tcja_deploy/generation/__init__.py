"""Image generation with the spiking VAE: image-quality metrics (reconstruction MSE, Fréchet distances,
Inception Score) and the in-project ANN feature networks they are computed on."""
