function [kernel, latent] = stage_forward(net, j, s, stage_input, blurry)
%STAGE_FORWARD One stage: features, kernel quotient (Eq. 4), image quotient (Eq. 5).
%   STAGE_INPUT is H x W x C_in (the blurry image, and the latent image as
%   a second channel); BLURRY the blurry image of scale j.
prefix = sprintf('scale%d_stage%d_', j, s);
weight = net.([prefix 'conv_weight']);        % C_out x C_in x f x f
[n_out, n_in, f, ~] = size(weight);
[height, width, ~] = size(stage_input);
z = zeros(height - f + 1, width - f + 1, n_out);
for o = 1:n_out
    acc = zeros(height - f + 1, width - f + 1);
    for c = 1:n_in
        % refdeblur's layer is a correlation: conv2 with the filter rotated.
        taps = reshape(weight(o, c, :, :), f, f);
        acc = acc + conv2(stage_input(:, :, c), rot90(taps, 2), 'valid');
    end
    if net.conv_bias
        bias = net.([prefix 'conv_bias']);
        acc = acc + bias(o);
    end
    z(:, :, o) = acc;
end
z = recombine(tanh(z), net, [prefix 'recombine1']);
z = recombine(tanh(z), net, [prefix 'recombine2']);
n_pairs = net.n_pairs(s);
x_sharp = z(:, :, 1:n_pairs);
y_blurry = z(:, :, n_pairs + 1:2 * n_pairs);
kernel = kernel_quotient(x_sharp, y_blurry, net, j);
latent = image_quotient(kernel, blurry, net.([prefix 'image_quotient_log_beta']), ...
                        net.image_pads(j));
end

function out = recombine(z, net, name)
% Eq. 2: out(:, :, o) = sum_c weight(o, c) z(:, :, c) at every pixel.
[height, width, n_in] = size(z);
weight = net.([name '_weight']);              % C_out x C_in
out = reshape(z, height * width, n_in) * weight.';
if net.recombine_bias
    out = out + repmat(net.([name '_bias']).', height * width, 1);
end
out = reshape(out, height, width, size(weight, 1));
end
