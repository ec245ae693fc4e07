function window = taper_window(height, width, ramp)
%TAPER_WINDOW Flat-top Barthann window: 1 inside, falling to 0 over RAMP pixels.
%   The ramp is the first RAMP points of the (2 RAMP + 1)-point Bartlett-Hann
%   window, barthannwin(2 * RAMP + 1) in MATLAB's Signal Processing Toolbox;
%   its formula is written out so that no toolbox is needed.
window = taper_profile(height, ramp) * taper_profile(width, ramp).';
end

function profile = taper_profile(len, ramp)
if len < 2 * ramp
    error('taper_window:tooShort', 'cannot taper %d px at both ends of %d px', ramp, len);
end
t = (0:ramp - 1).' / (2 * ramp);
rising = 0.62 - 0.48 * abs(t - 0.5) + 0.38 * cos(2 * pi * (t - 0.5));
profile = ones(len, 1);
profile(1:ramp) = rising;
profile(len - ramp + 1:len) = flipud(rising);
end
