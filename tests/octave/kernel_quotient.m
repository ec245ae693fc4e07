function kernel = kernel_quotient(x_sharp, y_blurry, net, j)
%KERNEL_QUOTIENT The kernel of Eq. 4 from n feature pairs (H x W x n each).
%   k = crop(ifft2(sum_i conj(X_i) Y_i ./ (sum_i |X_i|^2 + beta_k))), the
%   features tapered with a flat-top Barthann window and zero-padded to a
%   5-smooth FFT size; then negative values set to 0 and the sum made 1.
[height, width, n_pairs] = size(x_sharp);
m = net.kernel_sizes(j);
window = taper_window(height, width, net.taper_widths(j));
grid_size = [height width];
if net.pad_to_fast_size
    grid_size = [fast_length(height) fast_length(width)];
end
numerator = zeros(grid_size);
power = zeros(grid_size);
energy = 0;
for i = 1:n_pairs
    a = x_sharp(:, :, i) .* window;
    b = y_blurry(:, :, i) .* window;
    spectrum_a = fft2(a, grid_size(1), grid_size(2));
    numerator = numerator + conj(spectrum_a) .* fft2(b, grid_size(1), grid_size(2));
    power = power + abs(spectrum_a) .^ 2;
    energy = energy + sum(a(:) .^ 2);
end
beta = net.beta_k;
if strcmp(net.beta_k_mode, 'relative')
    beta = max(net.beta_k * energy, eps);
end
kernel = otf2psf_matlab(numerator ./ (power + beta), [m m]);
kernel = max(kernel, 0);
if net.normalize_kernel
    kernel = kernel / (sum(kernel(:)) + net.kernel_eps);
end
end
