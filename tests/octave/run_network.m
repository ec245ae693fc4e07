function run_network(model_file, images_file, out_file)
%RUN_NETWORK Run refdeblur_forward on every image of a file; save the kernels.
%   MODEL_FILE: written by refdeblur.porting.matlab.export_mat.
%   IMAGES_FILE: variables n_images and image1, image2, ... (grey, double).
%   OUT_FILE (MATLAB v6 .mat): kernel<i>_scale<j>_stage<s> for every image,
%   scale and stage run, and seconds, the time of the forward passes.
net = load(model_file);
images = load(images_file);
out = struct();
started = tic;
for i = 1:images.n_images
    kernels = refdeblur_forward(net, images.(sprintf('image%d', i)));
    for j = 1:numel(kernels)
        for s = 1:numel(kernels{j})
            out.(sprintf('kernel%d_scale%d_stage%d', i, j, s)) = kernels{j}{s};
        end
    end
end
out.seconds = toc(started);
save('-v6', out_file, '-struct', 'out');
end
