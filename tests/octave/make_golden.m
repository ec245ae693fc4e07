function make_golden(out_file)
%MAKE_GOLDEN Outputs of MATLAB-convention helpers, as computed by GNU Octave.
%   MAKE_GOLDEN(OUT_FILE) writes tests/data/octave_golden.mat: imresize at
%   the sizes and scale factors of refdeblur's scales, psf2otf, otf2psf,
%   conv2 ('valid', 'same', 'full'), edgetaper and rgb2gray of small
%   deterministic inputs (stored alongside), plus imresize_matlab and
%   otf2psf_matlab (this folder's transcriptions of MATLAB's documented
%   algorithms, which the forward pass uses where Octave's functions
%   differ from MATLAB's). tests/test_octave.py compares refdeblur's
%   functions with them; derivations/matlab_path.md says what differs and
%   why. Run from this folder, with the image package loaded:
%
%     octave-cli --eval "pkg load image; cd tests/octave; make_golden('../data/octave_golden.mat')"
g = struct();
if exist('OCTAVE_VERSION', 'builtin')
    image_package = pkg('list', 'image');
    g.generator = sprintf('GNU Octave %s, image package %s', OCTAVE_VERSION, ...
                          image_package{1}.version);
else
    g.generator = sprintf('MATLAB %s', version);
end
rand('twister', 20261203);

% imresize: a 30 x 34 image through the pyramids of the 25 and 33 px
% networks (scale sizes ceil(m_j / m_J * size), as refdeblur_forward.m),
% shrunk and enlarged by output size; the same factors given as scales.
x = rand(30, 34);
g.resize_input = x;
sizes = struct('k25_s1', ceil(17 / 25 * [30 34] - 1e-9), ...
               'k33_s1', ceil(17 / 33 * [30 34] - 1e-9), ...
               'k33_s2', ceil(25 / 33 * [30 34] - 1e-9));
names = fieldnames(sizes);
for i = 1:numel(names)
    name = names{i};
    g.(['octave_imresize_down_' name]) = imresize(x, sizes.(name));
    g.(['matlab_imresize_down_' name]) = imresize_matlab(x, sizes.(name));
end
ups = {'up_k25_s2', 'down_k25_s1', [30 34]; ...
       'up_k33_s2', 'down_k33_s1', sizes.k33_s2; ...
       'up_k33_s3', 'down_k33_s2', [30 34]};
for i = 1:size(ups, 1)
    source = g.(['matlab_imresize_' ups{i, 2}]);
    g.(['octave_imresize_' ups{i, 1}]) = imresize(source, ups{i, 3});
    g.(['matlab_imresize_' ups{i, 1}]) = imresize_matlab(source, ups{i, 3});
end
factors = {'17_25', 17 / 25; '25_33', 25 / 33; '17_33', 17 / 33};
for i = 1:size(factors, 1)
    shrunk = imresize(x, factors{i, 2});
    g.(['octave_imresize_scale_' factors{i, 1}]) = shrunk;
    g.(['octave_imresize_inverse_scale_' factors{i, 1}]) = imresize(shrunk, 1 / factors{i, 2});
end

% imresize of a kernel, enlarged 17 -> 25 -> 33 (the kernel hand-over of
% refdeblur's coarse-to-fine refinement).
trajectory = zeros(17);
trajectory(sub2ind([17 17], 5:13, [6 6 7 8 9 10 11 11 12])) = 1;
kernel = conv2(trajectory, fspecial('gaussian', 5, 1), 'same');
g.kernel17 = kernel / sum(kernel(:));
g.octave_imresize_kernel25 = imresize(g.kernel17, [25 25]);
g.octave_imresize_kernel33 = imresize(g.octave_imresize_kernel25, [33 33]);

% psf2otf / otf2psf: odd and even kernels on odd and even grids.
g.psf_odd = rand(5, 5);
g.psf_even = rand(4, 6);
g.otf_odd_12x15 = psf2otf(g.psf_odd, [12 15]);
g.otf_odd_11x14 = psf2otf(g.psf_odd, [11 14]);
g.otf_odd_11x13 = psf2otf(g.psf_odd, [11 13]);
g.otf_even_9x10 = psf2otf(g.psf_even, [9 10]);
grids = {'odd_12x15', [5 5]; 'odd_11x14', [5 5]; 'odd_11x13', [5 5]; 'even_9x10', [4 6]};
for i = 1:size(grids, 1)
    otf = g.(['otf_' grids{i, 1}]);
    g.(['octave_otf2psf_' grids{i, 1}]) = real(otf2psf(otf, grids{i, 2}));
    g.(['matlab_otf2psf_' grids{i, 1}]) = otf2psf_matlab(otf, grids{i, 2});
end

% conv2 of a 20 x 23 image with a 5 x 5 and a 4 x 6 kernel.
g.conv_image = rand(20, 23);
g.conv_kernel = rand(5, 5);
g.conv_kernel_even = rand(4, 6);
shapes = {'valid', 'same', 'full'};
for i = 1:numel(shapes)
    g.(['conv2_' shapes{i}]) = conv2(g.conv_image, g.conv_kernel, shapes{i});
    g.(['conv2_even_' shapes{i}]) = conv2(g.conv_image, g.conv_kernel_even, shapes{i});
end

% edgetaper (Octave's own, which its source says is not MATLAB's) of the
% resize input with a Gaussian kernel.
g.edgetaper_psf = fspecial('gaussian', 5, 1);
g.edgetaper_output = edgetaper(x, g.edgetaper_psf);

% rgb2gray of a 10 x 12 colour image.
g.rgb_input = rand(10, 12, 3);
g.rgb2gray_output = rgb2gray(g.rgb_input);

save('-v7', out_file, '-struct', 'g');
end
