function psf = otf2psf_matlab(otf, out_size)
%OTF2PSF_MATLAB MATLAB's otf2psf: the inverse of psf2otf.
%   The real part of ifft2(OTF), circularly shifted by floor(OUT_SIZE / 2)
%   and cropped to its first OUT_SIZE rows and columns, as MATLAB's
%   documentation describes otf2psf. GNU Octave's image package (2.14)
%   shifts by floor(size(OTF) / 2) and crops the centre instead, which puts
%   an odd-sized PSF one pixel off on an even-sized grid.
psf = circshift(real(ifft2(otf)), floor(out_size / 2));
psf = psf(1:out_size(1), 1:out_size(2));
end
