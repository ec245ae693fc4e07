function out = imresize_matlab(in, out_size)
%IMRESIZE_MATLAB MATLAB's imresize(IN, OUT_SIZE), bicubic with antialiasing.
%   For a 2-D double image and an output size [rows cols]: per axis, the
%   scale is out/in, output pixel i sits at input coordinate
%   u = i/scale + (1 - 1/scale)/2, Keys' cubic kernel (a = -0.5) is widened
%   by 1/scale when shrinking, the weights of each output pixel are
%   normalised to sum 1 and taps beyond the border are mirrored
%   ([1:n n:-1:1]). The axis with the smaller scale goes first.
%   GNU Octave's imresize (image package 2.14) does not normalise the
%   weights, so it differs from MATLAB's when shrinking.
scale = out_size ./ size(in);
[~, order] = sort(scale);
out = in;
for d = order
    weights = resize_weights(size(in, d), out_size(d), scale(d));
    if d == 1
        out = weights * out;
    else
        out = out * weights.';
    end
end
end

function weights = resize_weights(n_in, n_out, scale)
% Dense n_out x n_in matrix of the weights of one axis.
support = 4;
if scale < 1
    kernel = @(t) scale * cubic(scale * t);
    support = support / scale;
else
    kernel = @cubic;
end
u = (1:n_out).' / scale + 0.5 * (1 - 1 / scale);
taps = floor(u - support / 2) + (0:ceil(support) + 1);
w = kernel(u - taps);
w = w ./ sum(w, 2);
mirror = [1:n_in, n_in:-1:1];
taps = mirror(mod(taps - 1, 2 * n_in) + 1);
rows = repmat((1:n_out).', 1, size(taps, 2));
weights = accumarray([rows(:) taps(:)], w(:), [n_out n_in]);
end

function h = cubic(t)
a = abs(t);
h = (1.5 * a .^ 3 - 2.5 * a .^ 2 + 1) .* (a <= 1) + ...
    (-0.5 * a .^ 3 + 2.5 * a .^ 2 - 4 * a + 2) .* ((1 < a) & (a <= 2));
end
