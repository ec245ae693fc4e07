function [kernels, latent] = refdeblur_forward(net, y)
%REFDEBLUR_FORWARD Kernels of every stage and scale of a refdeblur network.
%   [KERNELS, LATENT] = REFDEBLUR_FORWARD(NET, Y) runs the network NET
%   (the struct that load() returns for a file written by
%   refdeblur.porting.matlab.export_mat) on the grey image Y (double,
%   values in [0, 1]). KERNELS{j}{s} is the kernel of stage s of scale j
%   (coarse to fine; convolution convention, centre at floor(m/2)+1);
%   LATENT is the latent image of the last stage run.
%
%   The finest scale runs NET.inference_stages stages, the coarser scales
%   all NET.n_stages. Conventions: derivations/matlab_path.md.
kernel_sizes = net.kernel_sizes;
n_scales = numel(kernel_sizes);
image_size = size(y);
kernels = cell(1, n_scales);
latent = [];
for j = 1:n_scales
    % Scale j sees the image shrunk by m_j / m_J; the 1e-9 keeps a product
    % that is an integer in exact arithmetic from rounding up.
    scale_size = ceil(kernel_sizes(j) / kernel_sizes(end) * image_size - 1e-9);
    if isequal(scale_size, image_size)
        blurry = y;
    else
        blurry = imresize_matlab(y, scale_size);
    end
    if j > 1
        latent = imresize_matlab(latent, scale_size);
    end
    n_run = net.n_stages;
    if j == n_scales
        n_run = net.inference_stages;
    end
    kernels{j} = cell(1, n_run);
    for s = 1:n_run
        if isempty(latent)
            stage_input = blurry;
        else
            stage_input = cat(3, blurry, latent);
        end
        [kernels{j}{s}, latent] = stage_forward(net, j, s, stage_input, blurry);
    end
end
end
