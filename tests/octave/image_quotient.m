function latent = image_quotient(kernel, y, log_beta, pad)
%IMAGE_QUOTIENT The latent image of Eq. 5: min_x ||k * x - y||^2 + beta_x ||x||^2.
%   Y is extended by replicating its border (at least PAD pixels per side,
%   more to reach a 5-smooth FFT size, split evenly with the extra pixel
%   after), the extension faded to zero with the Barthann ramp of PAD
%   pixels, solved under circular boundaries and cropped back.
[height, width] = size(y);
total = [fast_length(height + 2 * pad) fast_length(width + 2 * pad)] - [height width];
before = floor(total / 2);
after = total - before;
extended = padarray(padarray(y, before, 'replicate', 'pre'), after, 'replicate', 'post');
b = extended .* taper_window(size(extended, 1), size(extended, 2), pad);
otf = psf2otf(kernel, size(extended));
solution = real(ifft2(conj(otf) .* fft2(b) ./ (abs(otf) .^ 2 + exp(log_beta))));
latent = solution(before(1) + (1:height), before(2) + (1:width));
end
